"""CrewAI inside CrewCanvas: crews built from records and run per node, their events, and CrewAI projects.

The only package that imports `crewai` (lazily, inside functions: the import takes seconds).
"""
