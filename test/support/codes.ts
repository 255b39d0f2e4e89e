/** The `code` a promise rejects with ('no error' when it resolves): for table-style error assertions. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${(err as Error).message}`;
  }
  return 'no error';
}
