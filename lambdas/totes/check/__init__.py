"""Reconciliation: the warehouse compared with the source, above the stages (it reads the source
as the extract does and remodels it with the transform's own rules)."""
