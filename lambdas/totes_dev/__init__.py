"""Development tooling for the Terrific Totes platform: a local totesys source (schema, snapshot
loader, generator, simulator), the local stack (PostgreSQL, moto, Airflow) and the demo.

Never shipped to AWS and never imported by the ``totes`` package, which is what the Lambdas run;
its ``totes`` subcommands plug into the command line through the ``totes.commands`` entry points.
"""
