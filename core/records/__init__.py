"""Pure record logic: raw input -> :class:`schemas.Record` or :class:`schemas.Rejected`.

No pyflink here: the Flink ingest job, the collectors and ``strata parse`` call the same code.
The entry point is :class:`core.records.pipeline.RecordPipeline`; see docs/records.md. The
package imports nothing by itself, so a module that needs one helper (the level spellings, say)
does not load the whole pipeline.
"""
