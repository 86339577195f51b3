output "state_machine_arn" {
  value = aws_sfn_state_machine.pipeline.arn
}

output "alerts_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "ingestion_uri" {
  value = "s3://${aws_s3_bucket.lake["ingestion"].bucket}"
}

output "processed_uri" {
  value = "s3://${aws_s3_bucket.lake["processed"].bucket}"
}

output "lambda_functions" {
  value = { for stage, f in aws_lambda_function.stage : stage => f.function_name }
}

output "airflow_webserver_url" {
  value = local.mwaa_enabled ? aws_mwaa_environment.airflow[0].webserver_url : null
}
