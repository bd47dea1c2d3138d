extension Catalog {
    /// Release manifests in the catalog (one SQL count; for metrics).
    public var releaseCount: Int { scalar("SELECT count(*) FROM manifests") }
}
