"""Synthesis: the textbook (prose + code) and the exercises (signature + docstring -> solution, each verified
in the sandbox), seeded for diversity by topics, audiences and styles.

Public API: `phi1.synth.textbook.synth_textbook`, `phi1.synth.exercises.synth_exercises`, `phi1.synth.seeds`.
"""
