import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore

/// A release as the gateway names it to tools: a signed manifest, the commit id that names it, and what the
/// publisher's log says about it now.
public struct GatewayRelease: Sendable {
    public let manifest: SignedManifest
    /// The first 40 hex digits of the manifest id (see Protocol/gateway-v1.md, "Commit ids").
    public var commit: String { String(manifest.id.hex.prefix(40)) }
    /// Yanks, deprecations and advisories in force, as one line each (empty when there are none).
    public let notices: [String]
}

/// Maps tool-facing names to signed releases: `<publisher>/<name>` repositories (a publisher is a full 64-hex id
/// or an operator alias) and revisions (`main` or `latest`: the newest release the signed log has not yanked; a
/// version; a commit id; a full manifest id).
///
/// Every answer comes from the catalog's verified, settled view (the same `Registry.resolve` the CLI uses), so a
/// gateway never names a manifest the CLI would not.
public struct ReleaseResolver: Sendable {
    public let store: ContentStore
    public let catalog: Catalog
    public let aliases: [String: PublisherID]

    public init(store: ContentStore, catalog: Catalog, aliases: [String: PublisherID]) {
        self.store = store
        self.catalog = catalog
        self.aliases = aliases
    }

    var registry: Registry { Registry(store: store, catalog: catalog) }

    /// The publisher a repository owner names; nil if it is neither an alias nor a full id known here.
    public func publisher(_ owner: String) -> PublisherID? {
        if let id = aliases[owner] { return id }
        guard owner.utf8.count == 64, let id = PublisherID(hex: owner) else { return nil }
        return id
    }

    /// The publisher's log if the repository exists here: a known publisher with at least one release of `name`.
    public func log(owner: String, name: String) throws -> PublisherLog? {
        guard let publisher = publisher(owner), let log = try catalog.log(publisher),
            log.publishOrder.contains(where: { $0.hasPrefix(name + "@") })
        else { return nil }
        return log
    }

    /// Versions of `name` in publish order (yanked ones included: an exact name keeps working).
    public func versions(_ log: PublisherLog, name: String) -> [String] {
        log.publishOrder.filter { $0.hasPrefix(name + "@") }.map { String($0.dropFirst(name.count + 1)) }
    }

    /// Resolves a revision of a repository. Throws `GatewayError` with `RepoNotFound` or `RevisionNotFound`.
    public func resolve(owner: String, name: String, revision: String) throws -> GatewayRelease {
        guard let log = try log(owner: owner, name: name) else {
            throw GatewayError(.notFound, "RepoNotFound", "no repository \(owner)/\(name) is known here")
        }
        let publisher = log.publisher.description
        if revision == "main" || revision == "latest" {
            return try release(.release(publisher: publisher, name: name, version: "latest"), log: log, revision)
        }
        let lower = revision.lowercased()
        if lower.utf8.count == 40 || lower.utf8.count == 64, lower.utf8.allSatisfy(Self.isHex) {
            // A commit id or manifest id: one of this repository's releases whose manifest id starts with it.
            var found: GatewayRelease?
            for version in versions(log, name: name) {
                let r = try release(.release(publisher: publisher, name: name, version: version), log: log, revision)
                if r.manifest.id.hex.hasPrefix(lower) {
                    guard found == nil || found!.manifest.id == r.manifest.id else {
                        throw GatewayError(.conflict, "AmbiguousRevision", "\(revision) names more than one manifest")
                    }
                    found = r
                }
            }
            if let found { return found }
        }
        guard versions(log, name: name).contains(revision) else {
            throw GatewayError(.notFound, "RevisionNotFound", "\(owner)/\(name) has no revision \(revision)")
        }
        return try release(.release(publisher: publisher, name: name, version: revision), log: log, revision)
    }

    func release(_ reference: Reference, log: PublisherLog, _ revision: String) throws -> GatewayRelease {
        let resolved: Resolved
        do { resolved = try registry.resolve(reference) } catch {
            throw GatewayError(.notFound, "RevisionNotFound", "revision \(revision) does not resolve here: \(error)")
        }
        return GatewayRelease(manifest: resolved.manifest, notices: Self.notices(resolved, log: log))
    }

    /// One line per yank, deprecation or advisory of the release, and the resolution notes (why `latest` moved).
    static func notices(_ resolved: Resolved, log: PublisherLog) -> [String] {
        let release = resolved.manifest.manifest.release
        var lines: [String] = []
        if let status = log.releases[release.local] {
            if let y = status.yanked {
                lines.append("\(release.local) was yanked by its publisher (log entry \(y.index)): \(y.reason ?? "")")
            }
            for n in status.notices {
                switch n.kind {
                case .deprecate:
                    var line = "\(release.local) is deprecated (log entry \(n.index))"
                    if let r = n.reason { line += ": \(r)" }
                    if let s = n.successor { line += "; successor \(s)" }
                    if let s = n.sunset { line += "; sunset \(s)" }
                    lines.append(line)
                case .advisory:
                    lines.append(
                        "security advisory for \(release.local) (\(n.severity?.rawValue ?? "unrated"), log entry "
                            + "\(n.index)): \(n.reason ?? "")")
                default: break
                }
            }
        }
        return lines + resolved.notes
    }

    static func isHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }
}
