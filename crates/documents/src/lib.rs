//! Keta's printable documents: PDFs typeset on the server with typst (as a library) from
//! templates a clinic can edit (`data/documents/*.typ`).
//!
//! A template holds no patient data: the caller passes the document's data as JSON, which
//! the template reads as the virtual file `data.json` (`#let d = json("data.json")`), and
//! every template imports the shared letterhead and footer from `common.typ`. The templates
//! are embedded in the binary; a clinic that wants its own puts edited copies (same file
//! names) in a directory and points Keta at it: a file there replaces the embedded one.
//!
//! Output is the same on every machine: only the fonts bundled with typst (embedded in the
//! binary and in every PDF) are used, never the system's, and the PDF's date and identifier
//! come from the caller, not the clock (docs/decisions/0009-documents.md).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use time::OffsetDateTime;
use typst::diag::{FileError, FileResult, Severity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};
use typst_layout::PagedDocument;

/// One kind of printable document, each with its own template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Document {
    /// The signed session note with its amendments and signature block.
    SessionNote,
    /// The SPRAVATO REMS Patient Monitoring Form, laid out like the published one.
    RemsForm,
    /// A progress letter to the referring clinician or payer.
    ProgressLetter,
    /// The clinic's outcomes beside the published trials.
    OutcomesReport,
    /// The controlled-substance dispensing log.
    DispensingLog,
    /// The controlled-substance inventory (initial or biennial).
    Inventory,
    /// A draft of DEA Form 106 from a loss entry.
    Form106,
}

impl Document {
    pub const ALL: [Document; 7] = [
        Document::SessionNote,
        Document::RemsForm,
        Document::ProgressLetter,
        Document::OutcomesReport,
        Document::DispensingLog,
        Document::Inventory,
        Document::Form106,
    ];

    /// The template's file name under `data/documents/`.
    pub fn template(self) -> &'static str {
        match self {
            Document::SessionNote => "session-note.typ",
            Document::RemsForm => "rems-form.typ",
            Document::ProgressLetter => "progress-letter.typ",
            Document::OutcomesReport => "outcomes-report.typ",
            Document::DispensingLog => "dispensing-log.typ",
            Document::Inventory => "inventory.typ",
            Document::Form106 => "dea-form-106.typ",
        }
    }

    /// What the document is called, for a file name and the audit trail.
    pub fn slug(self) -> &'static str {
        self.template().trim_end_matches(".typ")
    }
}

/// The embedded templates, as shipped in `data/documents/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("common.typ", include_str!("../../../data/documents/common.typ")),
    ("session-note.typ", include_str!("../../../data/documents/session-note.typ")),
    ("rems-form.typ", include_str!("../../../data/documents/rems-form.typ")),
    ("progress-letter.typ", include_str!("../../../data/documents/progress-letter.typ")),
    ("outcomes-report.typ", include_str!("../../../data/documents/outcomes-report.typ")),
    ("dispensing-log.typ", include_str!("../../../data/documents/dispensing-log.typ")),
    ("inventory.typ", include_str!("../../../data/documents/inventory.typ")),
    ("dea-form-106.typ", include_str!("../../../data/documents/dea-form-106.typ")),
];

/// The name of the virtual file that carries the document's data.
pub const DATA_FILE: &str = "data.json";

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The template did not compile or failed on the data (a clinic's edit, or a bug).
    #[error("the document template {template} failed: {message}")]
    Template { template: &'static str, message: String },
    #[error("the data for {template} could not be encoded: {message}")]
    Data { template: &'static str, message: String },
}

/// Compiles templates into PDFs. Holds the fonts and typst's standard library; cheap to
/// share (`Renderer::embedded()`), and each render is independent.
pub struct Renderer {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
    /// A directory of the clinic's edited templates, consulted before the embedded ones.
    dir: Option<PathBuf>,
}

impl Renderer {
    /// A renderer over the embedded templates, overridden by files in `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let fonts: Vec<Font> = typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect();
        Renderer {
            library: LazyHash::new(Library::builder().build()),
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
            dir,
        }
    }

    /// The process-wide renderer over the embedded templates (fonts are parsed once).
    pub fn embedded() -> &'static Renderer {
        static R: OnceLock<Renderer> = OnceLock::new();
        R.get_or_init(|| Renderer::new(None))
    }

    /// Typesets one document from its data. `produced_at` becomes the PDF's creation date
    /// and typst's `today`, so the same data and time give the same bytes. CPU-bound: call
    /// it off the async runtime (`spawn_blocking`).
    pub fn render(
        &self,
        doc: Document,
        data: &serde_json::Value,
        produced_at: OffsetDateTime,
    ) -> Result<Vec<u8>, DocumentError> {
        let template = doc.template();
        let json = serde_json::to_vec(data).map_err(|e| DocumentError::Data { template, message: e.to_string() })?;
        let at = produced_at.to_offset(time::UtcOffset::UTC);
        let when = Datetime::from_ymd_hms(at.year(), at.month().into(), at.day(), at.hour(), at.minute(), at.second());
        let world = DocWorld {
            renderer: self,
            main: file_id(template),
            data: Bytes::new(json),
            today: Datetime::from_ymd(at.year(), at.month().into(), at.day()),
        };
        let compiled = typst::compile::<PagedDocument>(&world);
        let document =
            compiled.output.map_err(|e| DocumentError::Template { template, message: diagnostics(&world, &e) })?;
        let options = typst_pdf::PdfOptions {
            ident: Smart::Custom(format!("keta-{}", doc.slug())),
            creator: Smart::Custom(Some("Keta".into())),
            timestamp: when.map(typst_pdf::Timestamp::new_utc),
            ..Default::default()
        };
        let pdf = typst_pdf::pdf(&document, &options)
            .map_err(|e| DocumentError::Template { template, message: diagnostics(&world, &e) })?;
        // typst memoises across compilations; keep what recent renders used, drop the rest.
        typst::comemo::evict(10);
        Ok(pdf)
    }

    /// The text of a template: the clinic's edited copy when there is one, else the embedded.
    fn template_text(&self, name: &str) -> Option<String> {
        if let Some(dir) = &self.dir
            && let Some(text) = read_plain_file(dir, name)
        {
            return Some(text);
        }
        EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, t)| (*t).to_string())
    }
}

/// Reads `dir/name` only for a plain template file name (no directories, no `..`), so a
/// template cannot read other files from the server.
fn read_plain_file(dir: &Path, name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name.ends_with(".typ")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.contains("..");
    if !plain {
        return None;
    }
    std::fs::read_to_string(dir.join(name)).ok()
}

fn file_id(name: &str) -> FileId {
    let vpath = VirtualPath::new(name).expect("template names are plain file names");
    RootedPath::new(VirtualRoot::Project, vpath).intern()
}

fn file_name(id: FileId) -> Option<String> {
    let rooted = id.get();
    match rooted.root() {
        VirtualRoot::Project => Some(rooted.vpath().get_without_slash().to_string()),
        VirtualRoot::Package(_) => None,
    }
}

fn diagnostics(world: &DocWorld<'_>, errors: &[SourceDiagnostic]) -> String {
    errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let place = d
                .span
                .id()
                .and_then(|id| {
                    let range = world.range(d.span)?;
                    let line = world.source(id).ok()?.lines().byte_to_line(range.start)? + 1;
                    Some(format!("{}:{line}: ", file_name(id)?))
                })
                .unwrap_or_default();
            format!("{place}{}", d.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What one compilation sees: the templates, the data file and the fonts; no file system
/// beyond the clinic's template directory, no packages, no network.
struct DocWorld<'a> {
    renderer: &'a Renderer,
    main: FileId,
    data: Bytes,
    today: Option<Datetime>,
}

impl World for DocWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        &self.renderer.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.renderer.book
    }

    fn main(&self) -> FileId {
        self.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        let name = file_name(id).ok_or(FileError::AccessDenied)?;
        let text = self.renderer.template_text(&name).ok_or_else(|| FileError::NotFound(name.clone().into()))?;
        Ok(Source::new(id, text))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        let name = file_name(id).ok_or(FileError::AccessDenied)?;
        if name == DATA_FILE {
            return Ok(self.data.clone());
        }
        let text = self.renderer.template_text(&name).ok_or_else(|| FileError::NotFound(name.clone().into()))?;
        Ok(Bytes::from_string(text))
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.renderer.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        self.today
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_has_an_embedded_template() {
        for d in Document::ALL {
            assert!(EMBEDDED.iter().any(|(n, _)| *n == d.template()), "{}", d.template());
        }
    }

    #[test]
    fn a_template_directory_serves_only_plain_template_names() {
        let dir = std::env::temp_dir().join(format!("keta-doc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("common.typ"), "// edited").unwrap();
        assert_eq!(read_plain_file(&dir, "common.typ").as_deref(), Some("// edited"));
        assert_eq!(read_plain_file(&dir, "../etc/passwd"), None);
        assert_eq!(read_plain_file(&dir, "sub/common.typ"), None);
        assert_eq!(read_plain_file(&dir, "notes.txt"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
