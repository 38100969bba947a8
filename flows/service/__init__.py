"""The HTTP service around `components.runtime.AutoencoderRuntime`: routes, limits, explorer page."""
