"""Provider adapters, one per wire API, registered by the provider kind they serve."""

from baton.activities.providers.anthropic_messages import AnthropicMessagesProvider
from baton.activities.providers.base import ModelProvider, WorkerProviders, register_provider
from baton.activities.providers.offline import OfflineProvider
from baton.activities.providers.openai_chat import OpenAIChatProvider

register_provider("offline", OfflineProvider)
register_provider("openai", OpenAIChatProvider)
register_provider("anthropic", AnthropicMessagesProvider)

__all__ = ["ModelProvider", "WorkerProviders", "register_provider"]
