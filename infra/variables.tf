variable "environment" {
  description = "Environment name; part of every resource name (see lambdas/totes/naming.py)."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z0-9]+$", var.environment))
    error_message = "environment must be lower-case letters and digits."
  }
}

variable "aws_region" {
  description = "Region of every resource."
  type        = string
  default     = "eu-west-2"
}

variable "alert_email" {
  description = "Address subscribed to the alerts topic (it must confirm the subscription). Null: no email subscription."
  type        = string
  default     = null
}

variable "aws_sdk_pandas_layer_arn" {
  description = "ARN of the AWS SDK for pandas layer for Python 3.12 in this region (pandas and pyarrow)."
  type        = string
}

variable "dependency_layer_dir" {
  description = "Directory holding python/ with the other Lambda dependencies (psycopg[binary]); built by CI. Default: infra/build/layer."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the Lambda and Airflow log groups."
  type        = number
  default     = 90
}

variable "mwaa_subnet_ids" {
  description = "Two private subnets for Amazon MWAA. Empty: no MWAA environment is created (e.g. when Airflow runs elsewhere)."
  type        = list(string)
  default     = []
}

variable "mwaa_security_group_ids" {
  description = "Security groups of the MWAA environment (self-referencing ingress, egress to AWS APIs)."
  type        = list(string)
  default     = []
}

variable "mwaa_environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"
}

variable "airflow_version" {
  description = "Airflow version of the MWAA environment; the DAG and the lock file are tested against it."
  type        = string
  default     = "3.3.1"
}
