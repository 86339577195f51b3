# Every bucket of the platform, each private, versioned, KMS-encrypted and TLS-only (./bucket).
# The lakes are write-once (the code never deletes or overwrites) and keep every version: they
# are the history the warehouse is rebuilt from. Replaced DAGs, plugins and Lambda zips are kept
# 90 days to roll back to.

module "ingestion" {
  source                  = "./bucket"
  name                    = var.buckets.ingestion
  noncurrent_version_days = null
  # The fanned-out extract's plan and release marker of each attempt (docs/orchestration.md).
  expire_prefixes = { "_runs/" = 7 }
}

module "processed" {
  source                  = "./bucket"
  name                    = var.buckets.processed
  noncurrent_version_days = null
}

# MWAA: dags/, plugins.zip, requirements.txt.
module "airflow" {
  source                  = "./bucket"
  name                    = var.buckets.airflow
  noncurrent_version_days = 90
}

# Lambda function and layer zips from make package.
module "artifacts" {
  source                  = "./bucket"
  name                    = var.buckets.artifacts
  noncurrent_version_days = 90
}
