# The database credentials. Terraform creates the secrets and never their values: the deploy
# workflow writes each value from the GitHub secrets (put-secret-value), so no password is in
# this configuration, its plan, its state or its outputs. The Lambdas read them at run time.
#
# Values (JSON objects):
#   source-db     {PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, PG_DATABASE}
#   warehouse-db  {PG_HOST_DW, PG_PORT_DW, PG_USER_DW, PG_PASSWORD_DW, PG_DATABASE_DW}
#   airflow/connections/<id>  an Airflow connection (postgres, sslmode require) to the warehouse

locals {
  secrets = merge(
    {
      source    = { name = var.source_secret_name, about = "totesys source database settings (PG_* JSON)" }
      warehouse = { name = var.warehouse_secret_name, about = "warehouse database settings (PG_*_DW JSON)" }
    },
    {
      for id in var.airflow_connection_ids : "connection:${id}" => {
        name  = "airflow/connections/${id}"
        about = "Airflow connection ${id} (read through MWAA's Secrets Manager backend)"
      }
    },
  )
}

resource "aws_secretsmanager_secret" "this" {
  # checkov:skip=CKV2_AWS_57:The values are owned by the GitHub secrets; a password is rotated by changing it there and pushing (README runbook), not by a rotation Lambda.
  # checkov:skip=CKV_AWS_149:The AWS managed key aws/secretsmanager is usable only by this account's principals that IAM allows; a customer key would add cost, not a narrower trust boundary.
  for_each                = local.secrets
  name                    = each.value.name
  description             = "Terrific Totes ${each.value.about}; value written by the deploy workflow"
  recovery_window_in_days = var.recovery_window_days
}
