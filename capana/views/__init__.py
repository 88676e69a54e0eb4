"""Renderings of a :class:`capana.report.Report`; each is a pure function of the report."""
