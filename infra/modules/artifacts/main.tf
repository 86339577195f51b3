# Reads the packaging manifest that `make package` writes (build/artifacts.json) and turns it
# into what the pipeline and orchestration modules deploy. No provider and no resource, so real
# Terraform evaluates it offline in the tests, against an example manifest.
#
# Manifest paths are relative to the repository root. Zips go to S3 under keys that carry their
# content hash: a new build is a new key, an unchanged one is not uploaded again.

terraform {
  required_version = ">= 1.10"
}

variable "manifest_path" {
  description = "Path of build/artifacts.json."
  type        = string
}

variable "repository_root" {
  description = "Directory the manifest's paths are relative to."
  type        = string
}

variable "functions" {
  description = "The functions to deploy: each must be in the manifest."
  type        = set(string)
}

locals {
  manifest  = jsondecode(file(var.manifest_path))
  built     = try(local.manifest.functions, {})
  layers    = try(local.manifest.layers, {})
  missing   = setsubtract(var.functions, keys(local.built))
  unknown   = setsubtract(flatten([for f in var.functions : try(local.built[f].layers, [])]), keys(local.layers))
  too_large = [for f in var.functions : f if try(local.built[f].total_unzipped_bytes, 0) > local.lambda_unzipped_limit]

  # Lambda refuses a function whose code and layers unzip to more than 250 MB.
  lambda_unzipped_limit = 262144000
}

output "functions" {
  description = "Function -> its zip (path and S3 key), handler, runtime, architecture, layer names and hashes."
  value = {
    for f in var.functions : f => {
      path                 = "${var.repository_root}/${local.built[f].zip}"
      key                  = "lambda/functions/${f}-${local.built[f].sha256}.zip"
      handler              = local.built[f].handler
      runtime              = local.built[f].runtime
      architecture         = local.built[f].architecture
      layers               = local.built[f].layers
      base64sha256         = local.built[f].base64sha256
      sha256               = local.built[f].sha256
      total_unzipped_bytes = local.built[f].total_unzipped_bytes
    }
  }

  precondition {
    condition     = try(local.manifest.format, null) == 1
    error_message = "The packaging manifest is not format 1; rebuild it with make package."
  }
  precondition {
    condition     = length(local.missing) == 0
    error_message = "The packaging manifest has no build of: ${join(", ", sort(local.missing))}."
  }
  precondition {
    condition     = length(local.unknown) == 0
    error_message = "The packaging manifest's functions name layers it does not build: ${join(", ", sort(local.unknown))}."
  }
  precondition {
    condition     = length(local.too_large) == 0
    error_message = "These functions and their layers unzip to more than Lambda's 250 MB: ${join(", ", local.too_large)}."
  }
}

output "layers" {
  description = "Layer name -> its zip (path and S3 key), runtime, architecture and hash."
  value = {
    for name, layer in local.layers : name => {
      path         = "${var.repository_root}/${layer.zip}"
      key          = "lambda/layers/${name}-${layer.sha256}.zip"
      runtime      = layer.runtime
      architecture = layer.architecture
      base64sha256 = layer.base64sha256
      sha256       = layer.sha256
    }
  }
}

output "mwaa" {
  description = "plugins.zip and requirements.txt (paths and hashes) and the DAG folder."
  value = {
    plugins_path        = "${var.repository_root}/${local.manifest.mwaa.plugins_zip}"
    plugins_sha256      = local.manifest.mwaa.plugins_sha256
    requirements_path   = "${var.repository_root}/${local.manifest.mwaa.requirements}"
    requirements_sha256 = local.manifest.mwaa.requirements_sha256
    dags_path           = "${var.repository_root}/${local.manifest.mwaa.dags}"
  }
}
