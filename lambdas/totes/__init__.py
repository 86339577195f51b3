"""Terrific Totes ETL: shared code of the extract, transform and load Lambdas."""
