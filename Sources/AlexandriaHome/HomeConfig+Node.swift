import AlexandriaPeer

#if canImport(Glibc)
    import Glibc
#endif

/// The one mapping from config.toml to the node's settings. Every default is the settings type's own
/// (`GossipSettings`, `MirrorPolicy`, `ClientAdmission.Limits`), which `HomeConfig`'s fields start from too, so a
/// default lives in one place.
extension HomeConfig {
    /// `[node]`, `[gossip]` and `[test]` as gossip settings, with this home's peer table and state file.
    public func gossipSettings(home: Home) -> GossipSettings {
        var settings = GossipSettings()
        settings.outboundTarget = outbound
        settings.inboundCap = inbound
        settings.fanout = fanout
        settings.antiEntropySeconds = antiEntropySeconds
        settings.peerExchangeSeconds = peerExchangeSeconds
        settings.peerTablePath = home.peerTablePath
        settings.statePath = home.nodeStatePath
        settings.dropPeersFile = dropPeersFile
        if let testIdleTimeoutSeconds { settings.idleTimeoutSeconds = testIdleTimeoutSeconds }
        return settings
    }

    /// `[node] clients` and `clients_per_address`.
    public var clientLimits: ClientAdmission.Limits { .init(total: clients, perAddress: clientsPerAddress) }

    /// `[mirror]` as the mirror's policy; `pinnedOnly` (`node run --no-mirror`) keeps only pins and mirrored
    /// publishers. Fetched files are assembled in the home (the same filesystem as the store).
    public func mirrorPolicy(home: Home, pinnedOnly: Bool = false) -> MirrorPolicy {
        var policy = MirrorPolicy()
        policy.mode = pinnedOnly ? .pinned : MirrorPolicy.Mode(rawValue: mirrorMode) ?? policy.mode
        policy.budgetBytes = mirrorBudget ?? Self.defaultMirrorBudget(home.path)
        policy.publishers = mirrorPublishers
        policy.replicationFactor = replicationFactor
        policy.intervalSeconds = mirrorIntervalSeconds
        policy.holderTTLSeconds = holderTTLSeconds
        policy.demandReportSeconds = demandReportSeconds
        policy.scratchDirectory = home.path
        policy.scrubIntervalSeconds = scrubIntervalSeconds
        policy.idleCompressionShare = idleCompressionShare
        policy.scrubStatePath = home.scrubStatePath
        return policy
    }

    /// `[mirror] budget` left out: a quarter of the free space where the home is, at most 50 GiB (10 GiB when the
    /// free space cannot be read).
    public static func defaultMirrorBudget(_ path: String) -> UInt64 {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return 10 << 30 }
        return min(50 << 30, UInt64(st.f_bavail) * UInt64(st.f_frsize) / 4)
    }
}
