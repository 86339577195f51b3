output "environment_name" {
  value = aws_mwaa_environment.this.name
}

output "webserver_url" {
  value = aws_mwaa_environment.this.webserver_url
}
