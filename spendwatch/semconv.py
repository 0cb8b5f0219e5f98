"""Every span attribute name spendwatch reads or writes, written once.

The OpenTelemetry GenAI semantic conventions where a name exists, `spendwatch.*` for our own. The
instrumentation writes these, the collector reads them (from us and from any other instrumentation that
speaks the conventions), so a name changed here is a contract changed everywhere.
"""

# GenAI semantic conventions.
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated spelling of the provider, still sent by other instrumentations
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"  # includes cached input tokens
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"  # includes reasoning tokens
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"  # the anthropic SDK's name
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
# The cost proposal (open-telemetry/semantic-conventions-genai#443): what one inference cost, in which
# currency, and whether the provider said so (`provider`) or the recorder computed it (`local`).
GEN_AI_USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE = "gen_ai.usage.cost.source"
COST_SOURCE_LOCAL = "local"
# OpenAI's own group: the tier that served the call (`default`, `flex`, `priority`, `scale`), which prices it.
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SERVICE_TIER_DEPRECATED = "gen_ai.openai.response.service_tier"

GEN_AI_TOKEN_TYPE = "gen_ai.token.type"  # a metric attribute: input or output
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
# GenAI client metrics (histograms the instrumentation records through the app's meter provider).
GEN_AI_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"
GEN_AI_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"

# General semantic conventions.
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"
CLOUD_REGION = "cloud.region"

# spendwatch's own.
# The key's fingerprint and hint. The names avoid what scrubbers look for (`api_key`, `secret`, `auth`,
# `credential`, `token`, ... in logfire's defaults and most redaction rules): a scrubbed id would make
# every key one key.
SPENDWATCH_KEY_FINGERPRINT = "spendwatch.fingerprint.id"
SPENDWATCH_KEY_HINT = "spendwatch.fingerprint.hint"
# The names spendwatch sent before; the collector still reads them.
SPENDWATCH_API_KEY_ID = "spendwatch.api_key.id"
SPENDWATCH_API_KEY_HINT = "spendwatch.api_key.hint"
SPENDWATCH_USAGE_ESTIMATED = "spendwatch.usage.estimated"
# What a call used besides tokens, each priced by the collector (genai-prices' usage names in brackets):
SPENDWATCH_USAGE_WEB_SEARCH_CALLS = "spendwatch.usage.web_search_calls"  # billed searches [web_searches]
SPENDWATCH_USAGE_WEB_FETCH_CALLS = "spendwatch.usage.web_fetch_calls"  # Anthropic's web fetch: no fee
SPENDWATCH_USAGE_WEB_SEARCH_QUERIES = "spendwatch.usage.web_search_queries"  # Gemini grounding's queries
SPENDWATCH_USAGE_INPUT_CHARACTERS = "spendwatch.usage.input_characters"  # text to speech [input_characters]
SPENDWATCH_USAGE_AUDIO_SECONDS = "spendwatch.usage.audio_seconds"  # audio transcribed [audio_seconds]
SPENDWATCH_USAGE_INPUT_IMAGE_TOKENS = "spendwatch.usage.input_image_tokens"  # part of input [input_image_tokens]
SPENDWATCH_USAGE_INPUT_AUDIO_TOKENS = "spendwatch.usage.input_audio_tokens"  # part of input [input_audio_tokens]
SPENDWATCH_USAGE_IMAGES = "spendwatch.usage.images"  # images generated (priced per image where not by tokens)
SPENDWATCH_REQUEST_IMAGE_SIZE = "spendwatch.request.image_size"
SPENDWATCH_REQUEST_IMAGE_QUALITY = "spendwatch.request.image_quality"
SPENDWATCH_RESPONSE_TOOL_CALLS = "spendwatch.response.tool_calls"  # the types of the tool calls in the answer
# Parts of the token counts that are priced apart (genai-prices' usage names in brackets). Cache writes by
# lifetime are parts of `gen_ai.usage.cache_creation.input_tokens`; audio and image tokens of the input or
# output count; cached audio and images of the cache reads.
SPENDWATCH_USAGE_CACHE_WRITE_5M_TOKENS = "spendwatch.usage.cache_write_5m_tokens"  # [cache_write_5m_tokens]
SPENDWATCH_USAGE_CACHE_WRITE_1H_TOKENS = "spendwatch.usage.cache_write_1h_tokens"  # [cache_write_1h_tokens]
SPENDWATCH_USAGE_OUTPUT_AUDIO_TOKENS = "spendwatch.usage.output_audio_tokens"  # [output_audio_tokens]
SPENDWATCH_USAGE_OUTPUT_IMAGE_TOKENS = "spendwatch.usage.output_image_tokens"  # [output_image_tokens]
SPENDWATCH_USAGE_CACHE_AUDIO_READ_TOKENS = "spendwatch.usage.cache_audio_read_tokens"  # [cache_audio_read_tokens]
SPENDWATCH_USAGE_CACHE_IMAGE_READ_TOKENS = "spendwatch.usage.cache_image_read_tokens"  # [cache_image_read_tokens]
SPENDWATCH_USAGE_INPUT_VIDEO_TOKENS = "spendwatch.usage.input_video_tokens"  # [input_video_tokens]
# How the call was served, where it changes the price: the tier a provider answered with (Anthropic's
# `usage.service_tier`, Gemini's `x-gemini-service-tier`; OpenAI's has its semconv name above), Anthropic's
# fast mode (`usage.speed`), and a call answered through a provider's Batch API.
SPENDWATCH_RESPONSE_SERVICE_TIER = "spendwatch.response.service_tier"
SPENDWATCH_RESPONSE_SPEED = "spendwatch.response.speed"
SPENDWATCH_REQUEST_BATCH = "spendwatch.request.batch"
# Where a span says how its call was served (the tier, batch processing, fast mode): what prices it.
SERVICE_TIER_ATTRIBUTES = (
    OPENAI_RESPONSE_SERVICE_TIER,
    OPENAI_RESPONSE_SERVICE_TIER_DEPRECATED,
    "gen_ai.response.service_tier",
    SPENDWATCH_RESPONSE_SERVICE_TIER,
)
PRICE_CONTEXT_ATTRIBUTES = (*SERVICE_TIER_ATTRIBUTES, SPENDWATCH_REQUEST_BATCH, SPENDWATCH_RESPONSE_SPEED)
# What spendwatch priced a call at, beside the semconv cost (which is what the user pays): the list price
# and the price data that gave it.
SPENDWATCH_COST_LIST_AMOUNT = "spendwatch.cost.list_amount"
SPENDWATCH_COST_PRICE_DATA = "spendwatch.cost.price_data"

# Who a call was for (attribution). The semantic conventions' names where they exist; spendwatch's own
# beside them. The app sets them with `spendwatch.attribute(...)` or OpenTelemetry baggage, and any span
# around a call can carry them (an agent framework's agent-run span).
ENDUSER_ID = "enduser.id"
USER_ID = "user.id"  # the newer spelling of enduser.id
SESSION_ID = "session.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
SPENDWATCH_TENANT = "spendwatch.tenant"
SPENDWATCH_FEATURE = "spendwatch.feature"
SPENDWATCH_TAG_PREFIX = "spendwatch.tag."  # + the tag's name: free-form tags

# gen_ai.operation.name values.
OPERATION_CHAT = "chat"
OPERATION_GENERATE_CONTENT = "generate_content"
OPERATION_TEXT_COMPLETION = "text_completion"
OPERATION_EMBEDDINGS = "embeddings"
OPERATION_RESPONSES = "responses"  # OpenAI's Responses API, told apart from chat completions
OPERATION_IMAGE_GENERATION = "image_generation"
OPERATION_SPEECH = "speech"
OPERATION_TRANSCRIPTION = "transcription"
OPERATION_TRANSLATION = "translation"
OPERATION_MODERATION = "moderation"

# The instrumentation scope of spendwatch's spans; the collector prefers a call reported under this scope.
INSTRUMENTATION_SCOPE = "spendwatch.instrumentation"
