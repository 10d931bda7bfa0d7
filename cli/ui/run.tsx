/** Draws the UI until the user quits; loaded only by `shoal ui` (ink and React cost half a second to import). */
import { render } from 'ink';
import type { ApiClient } from '../client.ts';
import { App } from './app.tsx';
import { Navigator, type View } from './navigator.ts';
import { ClusterModel } from './model.ts';
import { ApiSource } from './source.ts';
import { ThemeContext, themeFor } from './theme.ts';

export async function runUi(client: ApiClient, initial: View): Promise<void> {
  const model = new ClusterModel(new ApiSource(client, client.label));
  model.start();
  let app: ReturnType<typeof render> | undefined;
  const navigator = new Navigator(model, () => app?.unmount(), initial);
  // Interactive explicitly: ink would otherwise draw only the last frame under CI=true.
  app = render(
    <ThemeContext value={themeFor(process.env)}>
      <App model={model} navigator={navigator} />
    </ThemeContext>,
    { alternateScreen: true, interactive: true, exitOnCtrlC: true, incrementalRendering: true, patchConsole: true },
  );
  await app.waitUntilExit();
  await model.stop();
}
