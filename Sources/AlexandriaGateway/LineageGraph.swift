import AlexandriaCatalog
import AlexandriaCore
import Foundation

/// A release's lineage drawn as inline SVG from its audit report: the release at the top, each parent one row below
/// the release derived from it, an arrow per hop labelled with its relation and its check (✓ the parent's audit
/// holds, ✗ it fails or the parent is unknown here). A tree: leaves take consecutive columns, a release sits above the
/// middle of its parents. Sizes are bounded by the audit's own depth limit (`Registry.maxLineageDepth`).
struct LineageGraph {
    let report: AuditReport

    struct Node {
        var title: String
        var subtitle: String
        /// nil: the release itself; else the hop into this node holds or not.
        var holds: Bool?
        var withdrawn: Bool
        var href: String?
        var depth: Int
        var x: Double
    }

    struct Edge {
        let child: Int
        let parent: Int
        let relation: String
        let holds: Bool
    }

    static let boxWidth = 260.0
    static let boxHeight = 46.0
    static let columnWidth = 290.0
    static let rowHeight = 96.0
    static let maxLabel = 38

    var svg: HTML {
        var nodes: [Node] = []
        var edges: [Edge] = []
        var nextSlot = 0.0
        func name(_ release: String) -> String { String(release.split(separator: "/").last ?? Substring(release)) }
        func short(_ id: String) -> String { String(id.prefix(7 + 12)) + "…" }
        /// Places a report's node and its parents; returns its index.
        func place(_ r: AuditReport, holds: Bool?, depth: Int) -> Int {
            let index = nodes.count
            nodes.append(
                Node(
                    title: name(r.release),
                    subtitle: short(r.manifestID) + " · " + (r.exitCode == 0 ? "holds" : r.verdict),
                    holds: holds, withdrawn: r.exitCode == 9,
                    href: holds == nil
                        ? nil : ContentHash(canonical: r.manifestID).map(PageRoutes.manifestURL), depth: depth, x: 0))
            var xs: [Double] = []
            for p in r.lineage {
                let child: Int
                if let sub = p.report {
                    child = place(sub, holds: p.holds, depth: depth + 1)
                } else {
                    child = nodes.count
                    nodes.append(
                        Node(
                            title: "unknown: " + short(p.manifest), subtitle: p.problem ?? "", holds: false,
                            withdrawn: false, href: nil, depth: depth + 1, x: nextSlot))
                    nextSlot += 1
                }
                edges.append(Edge(child: index, parent: child, relation: p.relation, holds: p.holds))
                xs.append(nodes[child].x)
            }
            if xs.isEmpty {
                nodes[index].x = nextSlot
                nextSlot += 1
            } else {
                nodes[index].x = (xs.min()! + xs.max()!) / 2
            }
            return index
        }
        _ = place(report, holds: nil, depth: 0)
        let width = max(1, nextSlot) * Self.columnWidth + 20
        let height = Double((nodes.map(\.depth).max() ?? 0) + 1) * Self.rowHeight
        func cx(_ n: Node) -> Double { 10 + n.x * Self.columnWidth + Self.columnWidth / 2 }
        func top(_ n: Node) -> Double { 10 + Double(n.depth) * Self.rowHeight }
        func num(_ v: Double) -> String { String(format: "%.1f", v) }
        func clip(_ s: String) -> String { s.count > Self.maxLabel ? String(s.prefix(Self.maxLabel - 1)) + "…" : s }

        var out: HTML = """
            <svg xmlns="http://www.w3.org/2000/svg" id="lineage-graph" role="img" width="\(num(width))" \
            height="\(num(height))" viewBox="0 0 \(num(width)) \(num(height))" font-family="system-ui,sans-serif" \
            font-size="12"><title>Lineage of \(report.release)</title><defs>\
            <marker id="arrow-ok" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" \
            orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#2f855a"/></marker>\
            <marker id="arrow-bad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" \
            orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#c53030"/></marker></defs>
            """
        for e in edges {
            let (c, p) = (nodes[e.child], nodes[e.parent])
            let (x1, y1, x2, y2) = (cx(c), top(c) + Self.boxHeight, cx(p), top(p))
            let color = e.holds ? "#2f855a" : "#c53030"
            out += """
                <g class="lineage-hop \(e.holds ? "hop-ok" : "hop-fail")"><line x1="\(num(x1))" y1="\(num(y1))" \
                x2="\(num(x2))" y2="\(num(y2 - 2))" stroke="\(color)" stroke-width="2" \
                marker-end="url(#\(e.holds ? "arrow-ok" : "arrow-bad"))"/><text x="\(num((x1 + x2) / 2 + 6))" \
                y="\(num((y1 + y2) / 2 + 4))" fill="\(color)">\(e.relation) \(e.holds ? "✓" : "✗")</text></g>
                """
        }
        for n in nodes {
            let stroke =
                n.holds == false ? "#c53030" : n.withdrawn ? "#b7791f" : n.holds == nil ? "#1c2430" : "#2f855a"
            let fill = n.holds == false ? "#fde8e8" : n.withdrawn ? "#fff8e1" : n.holds == nil ? "#e2e8f0" : "#f0fff4"
            var box: HTML = """
                <rect x="\(num(cx(n) - Self.boxWidth / 2))" y="\(num(top(n)))" width="\(num(Self.boxWidth))" \
                height="\(num(Self.boxHeight))" rx="6" fill="\(fill)" stroke="\(stroke)" stroke-width="\(n.holds == nil ? "2.5" : "1.5")"\
                \(n.href == nil && n.holds == false ? " stroke-dasharray=\"5 3\"" : "")/>\
                <text x="\(num(cx(n)))" y="\(num(top(n) + 19))" text-anchor="middle" font-weight="600">\(clip(n.title))</text>\
                <text x="\(num(cx(n)))" y="\(num(top(n) + 36))" text-anchor="middle" fill="#4a5568" font-size="11">\
                \(clip(n.subtitle))</text>
                """
            if let href = n.href { box = "<a href=\"\(href)\">\(box)</a>" }
            out += "<g class=\"lineage-node\">\(box)</g>"
        }
        return out + "</svg>"
    }
}
