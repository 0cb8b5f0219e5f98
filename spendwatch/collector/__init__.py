"""The collector: the local daemon that receives OTLP, keeps each LLM call once, prices it and stores it."""
