// The entry of dist/src/backend/tfjs-core-registrations.cjs (package.json's build:registrations bundles it with
// esbuild; select.ts loads it). tfjs-core's Node build (dist/tf-core.node.js) registers no gradients and no
// chained ops (tensor.slice(), …): only these two modules of tfjs-core do, and they are ES modules with
// extension-less imports that Node cannot load. The umbrella @tensorflow/tfjs bundled them into its own Node
// build; fgsm depends on tfjs-core alone and bundles just them. The bundled copies of tfjs-core's internals
// share the process's one engine and registries (tfjs keeps them on the global object), as the umbrella's do.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
