// Downloads one of Keta's PDF documents with the page's session and reads its text back with
// poppler's pdftotext (Debian's poppler-utils; .ci/run installs it), as a clinician would see it.
import { expect, type Locator, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The text of a PDF, every run of white space as one space (lines wrap where they fit). */
export function pdfText(pdf: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'keta-pdf-'));
  try {
    const file = join(dir, 'doc.pdf');
    writeFileSync(file, pdf);
    const text = execFileSync('pdftotext', ['-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
    return text.split(/\s+/).filter(Boolean).join(' ');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Fetches the document a "Download PDF" link points at, with the page's session (as the
 * browser's download does), checks it is served as a PDF download, and returns its text.
 */
export async function downloadPdf(page: Page, link: Locator): Promise<string> {
  const href = await link.getAttribute('href');
  expect(href, 'the link has a target').toBeTruthy();
  const r = await page.request.get(href!);
  expect(r.status(), href!).toBe(200);
  expect(r.headers()['content-type']).toBe('application/pdf');
  expect(r.headers()['content-disposition']).toMatch(/^attachment; filename=".+\.pdf"$/);
  const bytes = await r.body();
  expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
  return pdfText(bytes);
}
