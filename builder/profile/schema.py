"""The profile's JSON Schema, for editors (derived from the one model)."""

from .model import Profile


def profile_schema() -> dict:
    schema = Profile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pmem-image profile"
    return schema
