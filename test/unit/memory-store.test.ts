import test from 'ava';
import { MemoryStore } from '../../shared/store/memory.ts';
import { storeConformance } from '../helpers/store-conformance.ts';

const store = new MemoryStore();
storeConformance(test, 'memory store', () => store);
