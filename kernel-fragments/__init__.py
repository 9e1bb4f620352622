"""Kconfig fragments shipped as package data: installed as builder.knowledge.fragments (pyproject.toml
maps this directory there), so a wheel finds them exactly as a checkout does."""
