"""Federated learning on Flower with client-level DP, secure aggregation, robust aggregation and attacks.

``run(settings, engine=...)`` trains any ``TorchModel`` architecture across clients on Flower's
Simulation or Deployment Engine and returns, per experiment, accuracy and ε after each round;
``report`` turns a run into the JSON and HTML a user reads. Flower is an optional dependency
(``pip install 'modelshield[federated]'``): only ``engines`` and ``apps`` import it.
"""

from modelshield.privacy.federated.accounting import round_epsilons, rounds_within
from modelshield.privacy.federated.engines import ENGINES, run, run_deployment, run_simulation
from modelshield.privacy.federated.partition import dirichlet_partition, iid_partition, partition
from modelshield.privacy.federated.settings import (
    AGGREGATORS,
    ATTACKS,
    DP_MODES,
    PARTITIONS,
    Experiment,
    FederatedSettings,
)

__all__ = [
    "AGGREGATORS",
    "ATTACKS",
    "DP_MODES",
    "ENGINES",
    "PARTITIONS",
    "Experiment",
    "FederatedSettings",
    "dirichlet_partition",
    "iid_partition",
    "partition",
    "round_epsilons",
    "rounds_within",
    "run",
    "run_deployment",
    "run_simulation",
]
