"""Stage 4, render: Plan -> the mkosi 24.3 project as {path: file}, pure and escaped per sink."""
