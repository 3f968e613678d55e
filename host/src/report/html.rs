//! `report.html`: the markdown report as one self-contained page for a browser. Figures are
//! inlined as SVG, every table sorts by a click on a column header, and the suite file closes
//! the page. Nothing is fetched from elsewhere, so the file can be mailed or archived alone.

use std::path::Path;

use pulldown_cmark::{html, Options, Parser};

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:90em;\
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#eee;cursor:pointer;\
user-select:none}th:after{content:' \\2195';color:#999}tr:nth-child(even) td{background:#fafafa}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}pre{background:#f6f6f6;padding:1em;\
overflow:auto}code{background:#f2f2f2}";

/// Sorts a table by the clicked column: numbers (the first number in a cell) numerically,
/// anything else as text; a second click reverses.
const SORT: &str = "document.querySelectorAll('table').forEach(t=>{t.querySelectorAll('th')\
.forEach((th,i)=>{th.addEventListener('click',()=>{const b=t.tBodies[0];const rows=[...b.rows];\
const key=r=>{const s=r.cells[i].textContent.trim();const m=s.match(/^[-−+]?[0-9.]+(e[-+]?[0-9]+)?/i);\
return m?parseFloat(m[0].replace('−','-')):s};const up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';\
rows.sort((x,y)=>{const a=key(x),c=key(y);const o=(typeof a==='number'&&typeof c==='number')?a-c:\
String(a).localeCompare(String(c));return up?o:-o});rows.forEach(r=>b.appendChild(r))})})});";

/// The page for `markdown`, with `plots/NAME.png` figures replaced by `plots_dir/NAME.svg`
/// inline (a figure whose SVG is missing keeps its caption) and `suite_file` at the end.
pub fn render(title: &str, markdown: &str, plots_dir: &Path, suite_file: Option<&str>) -> String {
    let mut body = String::new();
    html::push_html(&mut body, Parser::new_ext(markdown, Options::ENABLE_TABLES));
    let body = inline_figures(&body, plots_dir);
    let suite = suite_file.map_or(String::new(), |text| {
        format!(
            "<h2>Suite file</h2>\n<pre><code>{}</code></pre>\n",
            escape(text)
        )
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}{suite}<script>{SORT}</script>\n</body>\n</html>\n",
        escape(title)
    )
}

/// Replaces each `<img src="plots/NAME.png" alt="ALT" />` with a figure holding NAME.svg.
fn inline_figures(html: &str, plots_dir: &Path) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<img src=\"plots/") {
        out.push_str(&rest[..start]);
        let tag_end = rest[start..]
            .find("/>")
            .map_or(rest.len(), |e| start + e + 2);
        let tag = &rest[start..tag_end];
        let attr = |name: &str| {
            let key = format!("{name}=\"");
            tag.find(&key).and_then(|i| {
                let value = &tag[i + key.len()..];
                value.find('"').map(|j| &value[..j])
            })
        };
        let stem = attr("src")
            .and_then(|s| s.strip_prefix("plots/"))
            .and_then(|s| s.strip_suffix(".png"))
            .unwrap_or_default();
        let svg = std::fs::read_to_string(plots_dir.join(format!("{stem}.svg")))
            .map(|s| strip_xml_declaration(&s).to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            attr("alt").unwrap_or_default()
        ));
        rest = &rest[tag_end..];
    }
    out.push_str(rest);
    out
}

fn strip_xml_declaration(svg: &str) -> &str {
    match (svg.starts_with("<?xml"), svg.find("?>")) {
        (true, Some(end)) => svg[end + 2..].trim_start(),
        _ => svg,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_figures_and_the_suite_file_make_one_page() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("w-curves.svg"),
            "<?xml version=\"1.0\"?>\n<svg id=\"c\"></svg>",
        )
        .unwrap();
        let md = "# Suite\n\n| a | b |\n|---|---|\n| 1 | x |\n\n![curves of w](plots/w-curves.png)\n\n![gone](plots/none.png)\n";
        let page = render("Suite <s>", md, dir.path(), Some("name = \"<s>\""));
        assert!(
            page.contains("<table>") && page.contains("<th>a</th>"),
            "{page}"
        );
        assert!(
            page.contains(
                "<figure><svg id=\"c\"></svg><figcaption>curves of w</figcaption></figure>"
            ),
            "{page}"
        );
        assert!(
            page.contains("<figure><figcaption>gone</figcaption></figure>"),
            "{page}"
        );
        assert!(!page.contains("<img") && !page.contains("<?xml"), "{page}");
        assert!(page.contains("name = &quot;&lt;s&gt;&quot;"), "{page}");
        assert!(page.contains("<title>Suite &lt;s&gt;</title>"), "{page}");
    }
}
