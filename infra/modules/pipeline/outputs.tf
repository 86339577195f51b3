output "state_machine_arn" {
  value = aws_sfn_state_machine.pipeline.arn
}

output "function_names" {
  description = "Function (extract, transform, load, lock) -> deployed function name."
  value       = { for function, f in aws_lambda_function.this : function => f.function_name }
}
