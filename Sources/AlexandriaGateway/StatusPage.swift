import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaPeer
import Foundation
import NIOHTTP1

extension PageRoutes {
    /// `/`: the node's id, peers with their scores, holdings against the budget, recent gossip, and the catalog
    /// searched by `?q=` (publisher id or alias, release name, or `publisher/name`), `PageLimits.catalogRows` a page.
    func statusPage(_ request: GatewayRequest) async throws -> (HTML, HTTPResponseStatus) {
        let q = request.target.query("q")?.trimmingCharacters(in: .whitespaces) ?? ""
        guard q.utf8.count <= PageLimits.maxQueryBytes else {
            return errorPage(.badRequest, "A search is at most \(PageLimits.maxQueryBytes) bytes.")
        }
        let pageText = request.target.query("page") ?? "1"
        guard let page = Int(pageText), page >= 1, page <= PageLimits.maxPage else {
            return errorPage(.badRequest, "?page= takes a number from 1 to \(PageLimits.maxPage).")
        }
        let state = await node?.snapshot()
        var body: HTML = ""
        body += nodeSection(state)
        body += try holdingsSection(state)
        body += peersSection(state)
        body += try gossipSection(state)
        body += try catalogSection(q: q, page: page)
        return (PageLayout.document(title: "Alexandria node", body: body), .ok)
    }

    func nodeSection(_ state: NodeState?) -> HTML {
        let witness = catalog.witnessKey.map(Ed25519Strict.describe)
        let trust = catalog.trust
        let trustLine: HTML =
            trust.isSet
            ? "\(trust.quorum) of \(trust.witnesses.count) trusted witnesses settle a conflict"
            : "no [trust] policy: each conflict is settled by the binding this node saw first"
        var rows: HTML = ""
        if let state {
            rows += """
                <tr><th>node id</th><td><code id="node-id">ed25519:\(state.node)</code></td></tr>
                <tr><th>peer port</th><td>\(state.listen)</td></tr>
                """
        } else {
            rows += "<tr><th>node id</th><td class=\"muted\">no node runs with this gateway</td></tr>"
        }
        if let witness, witness != state.map({ "ed25519:" + $0.node }) {
            rows += "<tr><th>witness key</th><td><code>\(witness)</code></td></tr>"
        }
        rows += "<tr><th>trust</th><td>\(trustLine)</td></tr>"
        return "<h1>Node</h1><section id=\"node\"><table>\(rows)</table></section>"
    }

    func holdingsSection(_ state: NodeState?) throws -> HTML {
        let usage = try store.usage()
        let mirror = state?.mirror ?? [:]
        let budget = node?.budgetBytes ?? UInt64(mirror["budget"] ?? "") ?? 0
        let used = UInt64(mirror["used"] ?? "") ?? usage.storedBytes
        var rows: HTML = """
            <tr><th>releases held</th><td id="releases-held">\(mirror["releasesHeld"] ?? "?") of \
            \(mirror["releasesKnown"] ?? "?") known (mirror mode \(mirror["mode"] ?? "?"))</td></tr>
            """
        if budget > 0 {
            let percent = Int(min(100, Double(used) * 100 / Double(budget)))
            rows += """
                <tr><th>budget</th><td><meter id="budget" min="0" max="\(budget)" value="\(min(used, budget))" \
                high="\(budget / 10 * 9)">\(percent)%</meter> \(PageLayout.bytes(used)) of \
                \(PageLayout.bytes(budget)) (\(percent)%)</td></tr>
                """
        }
        rows += """
            <tr><th>store</th><td>\(usage.files) files, \(usage.chunks) chunks: \(PageLayout.bytes(usage.rawBytes)) \
            of content, \(PageLayout.bytes(usage.storedBytes)) stored, \(PageLayout.bytes(usage.packBytes)) in packs\
            </td></tr>
            """
        return "<h2>Holdings</h2><section id=\"holdings\"><table>\(rows)</table></section>"
    }

    func peersSection(_ state: NodeState?) -> HTML {
        guard let state else { return "" }
        let peers = state.peers.sorted { ($0.score, $1.id) > ($1.score, $0.id) }.prefix(PageLimits.peers)
        var rows: HTML = ""
        for p in peers {
            rows += """
                <tr class="peer"><td><code>ed25519:\(String(p.id.prefix(16)))…</code></td><td>\(p.address)</td>\
                <td>\(p.direction)</td><td class="score">\(String(format: "%.1f", p.score))</td>\
                <td>\(PageLayout.duration(p.connectedSeconds))</td></tr>
                """
        }
        let table: HTML =
            peers.isEmpty
            ? "<p class=\"muted\">no peer connected</p>"
            : "<table><tr><th>peer</th><th>address</th><th>dialled</th><th>score</th><th>connected for</th></tr>\(rows)</table>"
        return """
            <h2>Peers</h2><section id="peers"><p>\(state.peers.count) connected, \(state.knownPeers) known</p>\
            \(table)</section>
            """
    }

    func gossipSection(_ state: NodeState?) throws -> HTML {
        var out: HTML = "<h2>Recent gossip</h2><section id=\"gossip\">"
        if let c = state?.counters {
            out += """
                <p>\(c.itemsAdded) items added, \(c.itemsInvalid) invalid, \(c.itemsConflicting) conflicting, \
                \(c.itemsRefused) refused; \(c.reconcileRounds) reconciliation rounds; \
                \(PageLayout.bytes(UInt64(max(0, c.bytesReceived)))) received, \
                \(PageLayout.bytes(UInt64(max(0, c.bytesSent)))) sent; \(state?.pendingItems ?? 0) items waiting for \
                what they depend on</p>
                """
        }
        let now = Int(Date().timeIntervalSince1970 * 1000)
        var rows: HTML = ""
        for item in try catalog.recentItems(limit: PageLimits.recentItems) {
            rows += """
                <tr><td>\(Self.kindName(item.kind))</td><td><code>\(Self.short(item.id))</code></td>\
                <td>\(item.bytes) B</td><td>\(PageLayout.duration(Double(now - item.arrivedMillis) / 1000)) ago</td></tr>
                """
        }
        out += "<table><tr><th>kind</th><th>item</th><th>size</th><th>arrived</th></tr>\(rows)</table></section>"
        return out
    }

    static func kindName(_ kind: CatalogItem.Kind) -> String {
        switch kind {
        case .publisherKey: "publisher key"
        case .logEntry: "log entry"
        case .manifest: "manifest"
        case .checkpoint: "checkpoint"
        case .equivocation: "equivocation proof"
        case .cosignature: "witness cosignature"
        case .availability: "availability"
        case .demand: "demand"
        case .compromise: "compromise notice"
        }
    }

    /// The catalog, newest first, filtered by `q`: a publisher id prefix or alias, a part of a release name, or
    /// `publisher/name` with both parts.
    func catalogSection(q: String, page: Int) throws -> HTML {
        let all = try catalog.allManifests()
        let needle = q.lowercased()
        let (pubPart, namePart): (String, String) = {
            if let slash = needle.firstIndex(of: "/") {
                return (String(needle[..<slash]), String(needle[needle.index(after: slash)...]))
            }
            return (needle, needle)
        }()
        let aliasesOf = Dictionary(grouping: aliases.keys, by: { aliases[$0]! })
        func publisherMatches(_ p: PublisherID) -> Bool {
            pubPart.isEmpty || p.description.hasPrefix(pubPart)
                || (aliasesOf[p] ?? []).contains { $0.lowercased().contains(pubPart) }
        }
        let both = needle.contains("/")
        let matches = all.reversed().filter { m in
            if needle.isEmpty { return true }
            if both { return publisherMatches(m.publisher) && (namePart.isEmpty || m.release.contains(namePart)) }
            return publisherMatches(m.publisher) || m.release.contains(namePart)
        }
        let pages = max(1, (matches.count + PageLimits.catalogRows - 1) / PageLimits.catalogRows)
        let shown = matches.dropFirst((min(page, pages) - 1) * PageLimits.catalogRows).prefix(PageLimits.catalogRows)
        var logs: [PublisherID: PublisherLog] = [:]
        var contested: [PublisherID: Set<String>] = [:]
        var rows: HTML = ""
        for m in shown {
            if logs[m.publisher] == nil { logs[m.publisher] = try catalog.log(m.publisher) }
            if contested[m.publisher] == nil {
                contested[m.publisher] = Set(try catalog.equivocations(publisher: m.publisher).map(\.finding.subject))
            }
            let release = "\(m.publisher)/\(m.release)"
            var flags: HTML = ""
            if contested[m.publisher]?.contains(release) == true {
                flags += "<span class=\"badge yanked\">overwrite attempt</span> "
            }
            if let status = logs[m.publisher]?.releases[m.release] {
                if status.yanked != nil { flags += "<span class=\"badge yanked\">yanked</span> " }
                for n in status.notices where n.kind != .yank {
                    flags += "<span class=\"badge notice\">\(n.kind.rawValue)</span> "
                }
            }
            let parts = m.release.split(separator: "@", maxSplits: 1).map(String.init)
            let href =
                parts.count == 2
                ? HTML.url(["ui", m.publisher.description, parts[0], parts[1]]) : Self.manifestURL(m.id)
            rows += """
                <tr class="release"><td><code title="\(m.publisher.description)">\(m.publisher.short)</code>\
                \(aliasesOf[m.publisher].map { " (" + $0.sorted().joined(separator: ", ") + ")" } ?? "")</td>\
                <td><a href="\(href)">\(m.release)</a></td><td><code>\(Self.short(m.id))</code></td><td>\(flags)</td></tr>
                """
        }
        var nav: HTML = ""
        if pages > 1 {
            nav += "<nav class=\"pages\">"
            if page > 1 {
                nav +=
                    "<a rel=\"prev\" href=\"\(HTML.url([""], query: [("q", q), ("page", String(page - 1))]) + "#catalog")\">previous</a>"
            }
            nav += "<span>page \(min(page, pages)) of \(pages)</span>"
            if page < pages {
                nav +=
                    "<a rel=\"next\" href=\"\(HTML.url([""], query: [("q", q), ("page", String(page + 1))]) + "#catalog")\">next</a>"
            }
            nav += "</nav>"
        }
        let summary: HTML =
            q.isEmpty
            ? "\(all.count) releases known"
            : "<span id=\"match-count\">\(matches.count)</span> of \(all.count) releases match <q>\(q)</q>"
        return """
            <h2>Catalog</h2><section id="catalog">\
            <form method="get" action="/#catalog"><input type="search" name="q" value="\(q)" maxlength="\(PageLimits.maxQueryBytes)" \
            placeholder="publisher id or alias, release name, or publisher/name" aria-label="search the catalog"> \
            <button type="submit">Search</button></form><p>\(summary)</p>\
            <table><tr><th>publisher</th><th>release</th><th>manifest</th><th></th></tr>\(rows)</table>\(nav)</section>
            """
    }
}
