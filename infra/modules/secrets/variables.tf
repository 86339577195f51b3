variable "source_secret_name" {
  type = string
}

variable "warehouse_secret_name" {
  type = string
}

variable "airflow_connection_ids" {
  description = "Airflow connection ids stored as airflow/connections/<id>."
  type        = list(string)
}

variable "recovery_window_days" {
  type = number
}
