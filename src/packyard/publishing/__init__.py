"""The publishing platform: users and keys, content, bundles, Python environments, running apps, the proxy."""
