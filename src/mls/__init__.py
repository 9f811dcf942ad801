"""RFC 9420 Messaging Layer Security, sans-IO."""
