"""tbatch: batch transcript processing through AssemblyAI's LLM Gateway."""
