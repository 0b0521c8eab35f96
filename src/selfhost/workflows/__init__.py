"""Walks through several services, above them all: ``demo`` (sandbox -> init ->
deploy -> verify -> the subprocessor list). The services (plan, targets, deploy,
verify, subprocessors, secrets, pki, sandbox) never import a workflow.
"""
