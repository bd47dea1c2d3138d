import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import Foundation
import NIOHTTP1

extension PageRoutes {
    /// A release's page: files with their sha256, log position, notices, overwrite attempts with both manifests,
    /// witnesses (trusted ones marked), holders, and the lineage drawn as SVG with each hop's check. Everything comes
    /// from one offline `audit` (`Registry.audit`, the CLI's checks; no content is re-hashed for a page view), kept
    /// and shown again while nothing it read has changed (`AuditCache`); a new one past the audit budget is `503`.
    func releasePage(_ reference: Reference) throws -> PageResult {
        let registry = Registry(store: store, catalog: catalog)
        let resolved: Resolved
        do {
            resolved = try registry.resolve(reference)
        } catch let e as CatalogError where e.code == .contested {
            return .init(try contestedPage(reference, message: e.message))
        } catch let e as ManifestError {
            return .init(errorPage(.notFound, e.description))
        } catch let e as CatalogError {
            return .init(errorPage(.notFound, e.description))
        }
        let report: AuditReport
        let how: String
        switch try audits.report(for: resolved, registry: registry) {
        case .kept(let r):
            report = r
            how = "kept"
        case .computed(let r, _):
            report = r
            how = "computed"
        case .busy(let wait):
            let page = errorPage(
                .serviceUnavailable,
                "This node limits the CPU it spends auditing releases for pages, and the limit is reached. Try again "
                    + "in \(PageResult.seconds(wait)) s, or run `alexandria audit REF --offline` yourself.")
            return .init(page, audit: "busy", retryAfterSeconds: wait)
        }
        let m = resolved.manifest.manifest
        var body: HTML = """
            <h1 id="release-name">\(m.name)@\(m.version)</h1>\
            <p>by publisher <code>\(m.publisher.description)</code> · manifest \
            <code id="manifest-id">\(resolved.manifest.id.description)</code></p>
            """
        for note in report.resolution { body += "<p class=\"muted note\">\(note)</p>" }
        body += banners(report)
        body += summarySection(report, m)
        body += noticesSection(report)
        body += try overwriteSection(report)
        body += filesSection(report)
        body += witnessesSection(report)
        body += holdersSection(report)
        body += lineageSection(report)
        return .init((PageLayout.document(title: "\(m.name)@\(m.version) – Alexandria", body: body), .ok), audit: how)
    }

    func banners(_ r: AuditReport) -> HTML {
        var out: HTML = ""
        if !r.overwriteAttempts.isEmpty {
            out += """
                <div class="banner danger" id="overwrite-banner" role="alert">Overwrite attempt: the publisher signed \
                \(r.overwriteAttempts.count == 1 ? "another manifest" : "other manifests") for this name. The proof \
                is below; the release stands for the manifest shown here.</div>
                """
        }
        if r.afterCompromise {
            out += """
                <div class="banner danger" id="compromise-banner" role="alert">Published after its publisher's key was \
                reported compromised (log frozen at size \(r.frozenAt ?? 0)): it may be a thief's.</div>
                """
        }
        if let y = r.yanked {
            out += """
                <div class="banner danger" id="yank-banner" role="alert">Yanked by its publisher (log entry \(y.index), \
                \(y.time)): \(y.reason ?? "")</div>
                """
        }
        if r.isWithdrawn && r.yanked == nil {
            out += """
                <div class="banner warn" id="withdrawn-banner" role="alert">Withdrawn: its publisher issued a high or \
                critical security advisory. Do not use it.</div>
                """
        }
        return out
    }

    func summarySection(_ r: AuditReport, _ m: Manifest) -> HTML {
        func mark(_ ok: Bool) -> HTML { ok ? "<span class=\"ok\">✓</span>" : "<span class=\"bad\">✗</span>" }
        let verdictMark: HTML = r.exitCode == 9 ? "<span class=\"bad\">⚠</span>" : mark(r.exitCode == 0)
        let logOK = r.log.included && r.log.inclusionProofVerified && r.log.checkpointsConsistent
        var rows: HTML = """
            <tr><th>verdict</th><td id="verdict">\(verdictMark) \(r.verdict) (audit exit \(r.exitCode))</td></tr>
            <tr><th>signature</th><td>\(mark(r.signatureValid)) ECDSA P-256 by publisher key \(r.signedBy)</td></tr>
            <tr><th>log position</th><td id="log-position">\(mark(logOK)) entry \(r.log.logIndex) of \
            \(r.log.logSize); inclusion \(r.log.inclusionProofVerified ? "proven" : "NOT proven") against \
            checkpoint \(r.log.checkpoints.last.map(String.init) ?? "none"); checkpoints \
            \(r.log.checkpointsConsistent ? "consistent" : "INCONSISTENT")</td></tr>
            <tr><th>created</th><td>\(m.created)</td></tr>
            """
        for p in r.log.problems { rows += "<tr><th></th><td class=\"bad\">\(p)</td></tr>" }
        if let l = m.license { rows += "<tr><th>license</th><td id=\"license\">\(l)</td></tr>" }
        if let c = m.modelCard { rows += "<tr><th>model card</th><td><code>\(c)</code></td></tr>" }
        for f in r.compromiseForks { rows += "<tr><th>fork</th><td class=\"bad\">\(f)</td></tr>" }
        return "<section id=\"summary\"><table>\(rows)</table></section>"
    }

    func noticesSection(_ r: AuditReport) -> HTML {
        var rows: HTML = ""
        for n in r.notices {
            var detail = n.reason ?? ""
            if let s = n.severity { detail = "severity \(s): " + detail }
            if let s = n.sunset { detail += "; sunset \(s)" }
            if let s = n.successor { detail += "; successor \(s)" }
            let badge: HTML =
                n.kind == "yank"
                ? "<span class=\"badge yanked\">yank</span>" : "<span class=\"badge notice\">\(n.kind)</span>"
            rows +=
                "<tr class=\"notice-row\"><td>\(badge)</td><td>\(n.index)</td><td>\(n.time)</td><td>\(detail)</td></tr>"
        }
        let table: HTML =
            r.notices.isEmpty
            ? "<p class=\"muted\">none: not yanked, deprecated or under an advisory</p>"
            : "<table><tr><th>notice</th><th>log entry</th><th>time</th><th>what</th></tr>\(rows)</table>"
        return "<h2>Notices</h2><section id=\"notices\">\(table)</section>"
    }

    /// Each overwrite attempt with both manifests of the equivocation proof, side by side.
    func overwriteSection(_ r: AuditReport) throws -> HTML {
        guard !r.overwriteAttempts.isEmpty else { return "" }
        var out: HTML = "<h2>Overwrite attempts</h2><section id=\"overwrites\">"
        if let s = r.settlement { out += "<p>settled here by: <strong>\(s)</strong></p>" }
        for c in r.contenders { out += "<p class=\"mono\">\(c)</p>" }
        for o in r.overwriteAttempts {
            out += "<h3>\(o.subject)</h3><div class=\"pair proof\">"
            for (label, id) in [("seen first here", o.first), ("then", o.second)] {
                out += "<div class=\"side\"><p><strong>\(label)</strong>: "
                guard let hash = ContentHash(canonical: id), let signed = try catalog.manifestOrEvidence(id: hash)
                else {
                    // A log entry or checkpoint proof names the signed statements by hash; a manifest not held here
                    // is named the same way.
                    out += "<code>\(id)</code>\(o.subject.contains("@") ? " (not held here)" : "")</p></div>"
                    continue
                }
                let m = signed.manifest
                out += """
                    <a href="\(Self.manifestURL(hash))"><code>\(id)</code></a><br>created \(m.created), log entry \
                    \(m.logIndex)</p><table><tr><th>path</th><th>size</th><th>sha256</th></tr>
                    """
                for f in m.files {
                    out += """
                        <tr><td><code class="path">\(f.path)</code></td><td>\(PageLayout.bytes(f.size))</td>\
                        <td><code>\(f.sha256.hex)</code></td></tr>
                        """
                }
                out += "</table></div>"
            }
            out += "</div>"
        }
        return out + "</section>"
    }

    func filesSection(_ r: AuditReport) -> HTML {
        var rows: HTML = ""
        for f in r.files {
            let hex = f.sha256.hasPrefix(ContentHash.prefix) ? String(f.sha256.dropFirst(ContentHash.prefix.count)) : ""
            let held: HTML =
                f.present
                ? (f.metadataMatches ? "<span class=\"ok\">held</span>" : "<span class=\"bad\">differs</span>")
                : "<span class=\"muted\">not held here</span>"
            rows += """
                <tr class="file"><td><code class="path">\(f.path)</code></td><td>\(PageLayout.bytes(f.size))</td>\
                <td><a href="\(HTML.url(["sha256", hex]))"><code class="sha256">\(hex)</code></a></td><td>\(held)</td></tr>
                """
        }
        return """
            <h2>Files (\(r.files.count))</h2><section id="files"><table><tr><th>path</th><th>size</th>\
            <th>sha256</th><th>here</th></tr>\(rows)</table></section>
            """
    }

    func witnessesSection(_ r: AuditReport) -> HTML {
        let trusted = Set(r.trustedWitnesses)
        var items: HTML = ""
        for w in r.witnesses {
            let key = String(w.prefix { $0 != " " })
            let detail = w.range(of: " (").map { String(w[$0.lowerBound...]) } ?? ""
            let badge: HTML =
                trusted.contains(key)
                ? "<span class=\"badge trusted\">trusted</span>" : "<span class=\"badge untrusted\">untrusted</span>"
            items += """
                <li class="witness \(trusted.contains(key) ? "is-trusted" : "is-untrusted")">\(badge) \
                <code>\(key)</code><span class="muted">\(detail)</span></li>
                """
        }
        let policy: HTML =
            r.quorum > 0
            ? "\(r.trustedWitnesses.count) trusted of \(r.witnesses.count); quorum \(r.quorum)"
            : "\(r.witnesses.count) witnesses; no [trust] policy on this node"
        return """
            <h2>Witnesses</h2><section id="witnesses"><p>\(policy)</p>\
            \(r.witnesses.isEmpty ? "<p class=\"muted\">none yet</p>" : "<ul>\(items)</ul>" as HTML)</section>
            """
    }

    func holdersSection(_ r: AuditReport) -> HTML {
        let list: HTML =
            r.holders.isEmpty
            ? "<p class=\"muted\">no node has stated that it holds all of it</p>"
            : "<ul>\(r.holders.map { "<li class=\"holder\"><code>\($0)…</code></li>" as HTML })</ul>"
        return "<h2>Holders</h2><section id=\"holders\">\(list)</section>"
    }

    func lineageSection(_ r: AuditReport) -> HTML {
        guard !r.lineage.isEmpty else {
            return "<h2>Lineage</h2><section id=\"lineage\"><p class=\"muted\">a root: no parents</p></section>"
        }
        var rows: HTML = ""
        var depth = 0
        var level = r.lineage.map { (child: r, parent: $0) }
        while !level.isEmpty {
            depth += 1
            var next: [(child: AuditReport, parent: AuditReport.Parent)] = []
            for (child, p) in level {
                let check: HTML =
                    p.holds
                    ? "<span class=\"ok\">✓ \(p.report?.verdict ?? "")</span>"
                    : "<span class=\"bad\">✗ \(p.problem ?? p.report?.verdict ?? "")</span>"
                rows += """
                    <tr class="hop \(p.holds ? "hop-ok" : "hop-fail")"><td>\(depth)</td><td>\(Self.local(child.release))</td>\
                    <td>\(p.relation) of</td><td>\(p.report.map { Self.local($0.release) } ?? "unknown")<br>\
                    <code>\(p.manifest)</code></td><td>\(check)</td></tr>
                    """
                if let sub = p.report { next += sub.lineage.map { (sub, $0) } }
            }
            level = next
        }
        return """
            <h2>Lineage</h2><section id="lineage">\(LineageGraph(report: r).svg)\
            <table><tr><th>hop</th><th>release</th><th>relation</th><th>parent</th><th>check</th></tr>\(rows)</table>\
            </section>
            """
    }

    /// `name@version` of `publisher/name@version`.
    static func local(_ release: String) -> String { String(release.split(separator: "/").last ?? Substring(release)) }

    /// A release name the publisher signed more than one manifest for, with nothing here to settle it.
    func contestedPage(_ reference: Reference, message: String) throws -> (HTML, HTTPResponseStatus) {
        guard case .release(let publisherText, let name, let version) = reference,
            let publisher = PublisherID(hex: publisherText)
        else { return errorPage(.conflict, message) }
        var items: HTML = ""
        for c in try catalog.contenders(publisher: publisher, release: "\(name)@\(version)") {
            items += "<li><a href=\"\(Self.manifestURL(c.id))\"><code>\(c.id.description)</code></a></li>"
        }
        let body: HTML = """
            <h1>\(name)@\(version)</h1><div class="banner danger" id="overwrite-banner" role="alert">Contested: the \
            publisher signed different manifests for this name and nothing settles which stands here.</div>\
            <section><pre class="mono">\(message)</pre><ul>\(items)</ul></section>
            """
        return (PageLayout.document(title: "\(name)@\(version) – contested", body: body), .conflict)
    }
}
