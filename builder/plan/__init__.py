"""Stage 3, the plan: checks over a profile and the one resolved contract everything downstream reads."""
