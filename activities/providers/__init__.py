"""Provider adapters, one per wire API, registered by the provider kind they serve."""

from activities.providers.base import ModelProvider, provider_for, register_provider
from activities.providers.offline import OfflineProvider

register_provider("offline", OfflineProvider)

__all__ = ["ModelProvider", "provider_for", "register_provider"]
