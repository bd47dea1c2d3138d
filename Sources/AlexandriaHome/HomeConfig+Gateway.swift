import AlexandriaGateway
import AlexandriaManifest

/// `[gateway]` as the gateway's settings, beside the node's other mappings (`HomeConfig+Node.swift`): every default
/// is `GatewaySettings`' own.
extension HomeConfig {
    /// The gateway's settings to listen on `host:port` (`--http` or `[gateway] listen`), with `[gateway]`'s timeouts
    /// and connection cap, and `[gateway.aliases]`.
    public func gatewaySettings(host: String, port: Int) throws -> GatewaySettings {
        var settings = GatewaySettings()
        settings.host = host
        settings.port = port
        if let n = gatewayHeaderTimeout { settings.headerTimeoutSeconds = Int64(n) }
        if let n = gatewayIdleTimeout { settings.idleTimeoutSeconds = Int64(n) }
        if let n = gatewayMaxConnections { settings.maxConnections = n }
        for (name, id) in gatewayAliases {
            guard let publisher = PublisherID(hex: id) else {
                throw HomeError("[gateway.aliases] \(name) is not a publisher id")
            }
            settings.aliases[name] = publisher
        }
        return settings
    }
}
