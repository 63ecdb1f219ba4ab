"""Pure record logic: raw input -> :class:`schemas.Record` or :class:`schemas.Rejected`.

No pyflink here: the Flink ingest job, the collectors and ``strata parse`` call the same code.
The entry point is :class:`core.records.pipeline.RecordPipeline`; see docs/records.md.
"""

from core.records.config import PipelineConfig
from core.records.pipeline import RecordPipeline

__all__ = ["PipelineConfig", "RecordPipeline"]
