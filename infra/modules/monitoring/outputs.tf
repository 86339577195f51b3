output "alerts_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "kms_key_arn" {
  description = "The key of the alerts topic and the log groups; publishers need kms:GenerateDataKey and kms:Decrypt on it."
  value       = aws_kms_key.alerts_and_logs.arn
}
