"""The secure lifecycle as one pipeline: stages with gates, each calling the library that owns the step.

from modelshield.pipeline import load_pipeline, run_pipeline, verify_record
config, base = load_pipeline("pipeline.yaml")
outcome = run_pipeline(config, base, run_dir=Path("runs/1"), key=Path("signing.pem"))
outcome.status, outcome.stopped_at, outcome.reason      # "failed", "scan", "1 file(s) failed the scan: ..."
verify_record("runs/1", "signing.pub.pem")              # IntegrityError on any edit
"""

from modelshield.pipeline.config import PipelineConfig, Stage, load_pipeline, parse_pipeline
from modelshield.pipeline.record import verify_record
from modelshield.pipeline.results import StageResult
from modelshield.pipeline.runner import RunOutcome, run_pipeline

__all__ = [
    "PipelineConfig",
    "RunOutcome",
    "Stage",
    "StageResult",
    "load_pipeline",
    "parse_pipeline",
    "run_pipeline",
    "verify_record",
]
