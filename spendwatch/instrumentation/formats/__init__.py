"""Wire formats: one module per API family, each saying where usage lives in its bodies and streams.

Every module has the same small surface:
- `DEFAULT_PROVIDER`: the provider name for its paths on a host no table names;
- `request_model(path, body)` and `request_stream(path, body)`: what the request asked for;
- `observe(call, obj)`: read one decoded JSON value (a whole response, or one stream event) into `call`.

`observe` only reads what it needs: model, id, finish reasons, usage, and the length (never the text) of
generated text, which is all an estimate needs when a stream carries no usage.
"""
