"""Mutation testing of a solution's tests: AST mutants of the reference, run many to a sandbox program, scored."""
