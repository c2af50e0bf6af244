#!/usr/bin/env python3
"""Prints template.yaml as the CloudFormation that SAM deploys, transformed offline by
aws-sam-translator (the library of the SAM CLI), for the tests to read what the stack really
creates: the HTTP API's routes and their authorization, the roles, the event source mappings.

Usage: python3 infra/sam-translate.py [template.yaml]   (needs the SAM CLI's virtual environment,
./infra/dev-setup.sh). No AWS call: the managed-policy lookup is answered locally, and CodeUri (a
layer's ContentUri) is replaced by an S3 placeholder, as `sam package` would."""
import json
import os
import sys

import yaml
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no managed policy; nothing to look up."""

    def load(self):
        return {}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path, encoding="utf-8") as f:
        template = yaml.safe_load(f)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder/code.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://placeholder/layer.zip"
    json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
