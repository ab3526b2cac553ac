"""template.yaml as CloudFormation receives it: SAM's own translator (aws-sam-cli's, in .venv-sam)
expands the serverless resources, their roles and policy templates. As `sam package` would, code
locations become S3 URIs and the state machine's definition file is inlined. Prints the JSON.

usage: sam_translate.py <project root> [<template file, default: <root>/template.yaml>]"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policies by name, so none need looking up in IAM."""

    def load(self):
        return {}


def main() -> None:
    root = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "template.yaml")
    with open(path, encoding="utf8") as f:
        template = yaml_parse(f.read())
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://artifacts/{name}.zip"
        if "DefinitionUri" in properties:
            with open(os.path.join(root, properties.pop("DefinitionUri")), encoding="utf8") as f:
                properties["Definition"] = json.load(f)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
