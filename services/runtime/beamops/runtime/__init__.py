"""The service runtime every beamops service shares: settings, server, interceptors, auth, logs, metrics."""
