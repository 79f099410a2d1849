// Small progressive enhancements for the agent workspace shell.
// Copy buttons: <button data-copy="element-id" data-copied="Copied">.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.value);
  } catch {
    source.select();
    document.execCommand('copy');
  }
  button.textContent = button.dataset.copied || 'Copied';
  setTimeout(() => { button.textContent = label; }, 1500);
});
