output "source" {
  value = { name = aws_secretsmanager_secret.this["source"].name, arn = aws_secretsmanager_secret.this["source"].arn }
}

output "warehouse" {
  value = { name = aws_secretsmanager_secret.this["warehouse"].name, arn = aws_secretsmanager_secret.this["warehouse"].arn }
}

output "airflow_connections" {
  value = {
    for key, secret in aws_secretsmanager_secret.this : trimprefix(key, "connection:") => { name = secret.name, arn = secret.arn }
    if startswith(key, "connection:")
  }
}
