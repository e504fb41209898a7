"""Mull's executing half: arq jobs that talk to GitHub, drive git and run the agent."""
