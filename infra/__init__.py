"""The worldgen AWS CDK app: one stack per environment (``cdk deploy -c env=dev``)."""
