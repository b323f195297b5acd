"""Red team against blue team on a live gateway: attacks through ``RemoteModel``, scored by what the gateway saw.

The red side (:mod:`modelshield.redteam.campaign`) runs black-box evasion, extraction and membership probes
against a served model, each under its own API key, and keeps a timeline of the queries it sent. The blue side
(:mod:`modelshield.redteam.blue`) reads the gateway's audit log — request decisions, the extraction signal, the
live monitor's alarms — runs alert rules over it, and attributes every event to the attack that caused it (by
API key identity, by time window for model-wide alarms), so the joint report can say, per attack, which control
fired after how many queries and what the attacker had obtained by then.
"""

from modelshield.redteam.blue import Detection, blue_rules, score_campaign
from modelshield.redteam.campaign import (
    ATTACKS,
    AttackRun,
    CampaignPlan,
    Target,
    remote_victim,
    run_attack,
    run_campaign,
    target_from_data,
)
from modelshield.redteam.traced import TracedModel

__all__ = [
    "ATTACKS",
    "AttackRun",
    "CampaignPlan",
    "Detection",
    "Target",
    "TracedModel",
    "blue_rules",
    "remote_victim",
    "run_attack",
    "run_campaign",
    "score_campaign",
    "target_from_data",
]
