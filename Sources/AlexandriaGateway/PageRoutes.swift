import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaPeer
import AlexandriaStore
import Foundation
import NIOHTTP1

/// Named limits of the HTML pages.
public enum PageLimits {
    /// Catalog rows on one page of the status page's catalog; `?page=N` pages through the rest.
    public static let catalogRows = 50
    /// Longest search (`?q=`), bytes; longer is `400`.
    public static let maxQueryBytes = 256
    /// Highest `?page=`.
    public static let maxPage = 1_000_000
    /// Catalog items listed as recent gossip.
    public static let recentItems = 12
    /// Peers listed (the connected ones, best score first).
    public static let peers = 64
    /// Share of one core that new audits for release pages may take (`AuditCache`); a kept audit costs no audit.
    public static let auditShare = 0.25
    /// Seconds of CPU that new audits may take at once before the share applies.
    public static let auditBurstSeconds = 5.0
    /// Audits kept for release pages (the least recently shown goes first).
    public static let keptAudits = 256
}

/// What the daemon tells the status page about itself: its gossip state (peers, scores, counters, holdings) and its
/// store budget. Absent when the gateway runs without a node.
public struct NodeView: Sendable {
    public let snapshot: @Sendable () async -> NodeState
    public let budgetBytes: UInt64

    public init(budgetBytes: UInt64, snapshot: @escaping @Sendable () async -> NodeState) {
        self.snapshot = snapshot
        self.budgetBytes = budgetBytes
    }
}

/// Server-rendered HTML for people: the status page at `/`, a page per release at `/ui/<publisher>/<name>/<version>`
/// and per manifest at `/ui/manifest/<64 hex>` (Protocol/gateway-v1.md, "Pages"). No script; every string from a
/// manifest, a log or a peer is escaped (`HTML`). Paths of three or four segments under `ui` match no other route:
/// Hugging Face paths have `resolve` as their third segment and at least five, OCI starts with `v2`.
public struct PageRoutes: GatewayRoutes {
    let store: ContentStore
    let catalog: Catalog
    let aliases: [String: PublisherID]
    let node: NodeView?
    /// The audits behind release pages, kept while nothing they read changed, new ones within a CPU share.
    let audits: AuditCache

    public init(store: ContentStore, catalog: Catalog, aliases: [String: PublisherID], node: NodeView?) {
        self.init(store: store, catalog: catalog, aliases: aliases, node: node, audits: AuditCache())
    }

    init(store: ContentStore, catalog: Catalog, aliases: [String: PublisherID], node: NodeView?, audits: AuditCache) {
        self.store = store
        self.catalog = catalog
        self.aliases = aliases
        self.node = node
        self.audits = audits
    }

    public func respond(to request: GatewayRequest) async throws -> GatewayResponse? {
        let s = request.target.segments
        let started = Date()
        let page: PageResult
        if s == [""] {
            page = .init(try await statusPage(request))
        } else if s.count == 3, s[0] == "ui", s[1] == "manifest" {
            guard let id = ContentHash(hex64: s[2]) else {
                page = .init(errorPage(.badRequest, "A manifest is named by 64 lowercase hex digits."))
                return page.response(renderSeconds: Date().timeIntervalSince(started))
            }
            page = try releasePage(.manifest(id))
        } else if s.count == 4, s[0] == "ui" {
            guard let publisher = publisher(s[1]) else {
                page = .init(
                    errorPage(.notFound, "No publisher \(s[1]) is known here (use the full 64-hex id or an alias)."))
                return page.response(renderSeconds: Date().timeIntervalSince(started))
            }
            page = try releasePage(.release(publisher: publisher.description, name: s[2], version: s[3]))
        } else {
            return nil
        }
        return page.response(renderSeconds: Date().timeIntervalSince(started))
    }

    /// A publisher by alias or full id.
    func publisher(_ owner: String) -> PublisherID? {
        if let id = aliases[owner] { return id }
        guard owner.utf8.count == 64 else { return nil }
        return PublisherID(hex: owner.lowercased())
    }

    func errorPage(_ status: HTTPResponseStatus, _ message: String) -> (HTML, HTTPResponseStatus) {
        let body: HTML = "<h1>\(String(status.code)) \(status.reasonPhrase)</h1><section><p>\(message)</p></section>"
        return (PageLayout.document(title: "\(status.code) – Alexandria", body: body), status)
    }

    /// A rendered page, with how its audit was had (`Server-Timing: audit;desc=kept|computed|busy`) and, when the
    /// audit budget refused it, when to come back.
    struct PageResult {
        let html: HTML
        let status: HTTPResponseStatus
        var audit: String?
        var retryAfterSeconds: Double?

        init(_ page: (HTML, HTTPResponseStatus), audit: String? = nil, retryAfterSeconds: Double? = nil) {
            html = page.0
            status = page.1
            self.audit = audit
            self.retryAfterSeconds = retryAfterSeconds
        }

        func response(renderSeconds: Double) -> GatewayResponse {
            var r = PageLayout.response(html, status: status, renderSeconds: renderSeconds)
            if let audit {
                let timing = r.headers["Server-Timing"].first ?? ""
                r.headers.replaceOrAdd(name: "Server-Timing", value: timing + ", audit;desc=" + audit)
            }
            if let wait = retryAfterSeconds { r.headers.add(name: "Retry-After", value: String(Self.seconds(wait))) }
            return r
        }

        /// Whole seconds to wait, at least 1 and at most an hour.
        static func seconds(_ wait: Double) -> Int { Int(min(3600, max(1, wait.rounded(.up)))) }
    }

    static func releaseURL(_ m: Manifest) -> String { HTML.url(["ui", m.publisher.description, m.name, m.version]) }
    static func manifestURL(_ id: ContentHash) -> String { HTML.url(["ui", "manifest", id.hex]) }
    static func short(_ id: ContentHash) -> String { "sha256:" + id.hex.prefix(16) + "…" }
}
