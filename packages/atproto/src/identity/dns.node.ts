/** TXT lookups through the operating system's resolver (Node only), for HandleResolver. */
import { resolveTxt } from 'node:dns/promises';

/** Each TXT record's character strings joined into one string; [] when the name has none. */
export async function nodeResolveTxt(name: string): Promise<string[]> {
  try {
    const records = await resolveTxt(name);
    return records.map((chunks) => chunks.join(''));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'ESERVFAIL' || code === 'ENOTIMP') return [];
    throw err;
  }
}
